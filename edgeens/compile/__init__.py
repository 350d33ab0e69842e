"""Lowering to deployable artifacts (ExecuTorch today; ONNX and Qualcomm AI Hub with the compile issue)."""
