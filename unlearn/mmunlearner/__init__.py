"""MMUnlearner's math (arXiv 2502.11051): Fisher saliency and its mask rule (`saliency`), the mask picture
(`plots`). The Lightning wiring lives in `unlearn.methods.mmunlearner`."""
