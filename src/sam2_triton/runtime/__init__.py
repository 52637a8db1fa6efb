"""How the ONNX files run on a CPU (ONNX Runtime fp32, OpenVINO bf16) and how a batch Triton
hands a model is grouped into runs: below every feature, above only the contract.
"""
