"""Training: the teacher, feature-wise distillation of surrogates, the search and fine-tuning."""
