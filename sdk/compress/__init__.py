"""Training-time compression: pruning, QAT, distillation, low-rank, clustering, architecture search,
early exits and cascades (``ember compress``; needs the ``train`` extra for torch)."""
