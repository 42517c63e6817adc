"""Block-wise fusion: blending weights, the fusion kernel, the pyramid."""
