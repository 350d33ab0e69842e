"""Data: image files, paired datasets in Restormer's layouts, synthetic degradations, bundled photographs."""
