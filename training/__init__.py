"""specklenet training: datasets and cases of the paper, U-Net training, ONNX export, evaluation."""
