"""Training-time compression of torch models: structured pruning, quantization-aware training,
distillation, low-rank factorization and weight clustering, all fine-tuned through one loop.

    from sdk.compress import fit, evaluate
    from sdk.compress.prune import prune          # structured channel pruning (coupled layers via torch.fx)
    from sdk.compress.qat import quantize_aware    # int8 fake quant matching ONNX Runtime / LiteRT / export-c
    from sdk.compress.distill import Distiller, OnnxTeacher
    from sdk.compress.lowrank import factorize
    from sdk.compress.cluster import cluster_weights

Needs the ``train`` extra (torch). See sdk/compress/README.md.
"""

from sdk.compress.train import evaluate, fit, predict_logits

__all__ = ["evaluate", "fit", "predict_logits"]
