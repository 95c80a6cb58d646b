"""Audio to features: the agent's feature families and the stages they are built from.

Families (`fe.frontend_type`): the MLTK microfrontend (`microfrontend.py`, numpy reference,
and its C twin chosen in `native.py`), MFCC (`mfcc.py`) and the speech embedding
(`embedding.py`, its model run as segments in `embedding_segments.py`). Stages: `framing` (framing, DC notch, Q12 window), `fft`, `filterbank`,
`noise` (noise reduction + PCAN), `log`, `quantize` (int8 model input). `features.py` picks
the family for a model's settings.
"""
from .embedding import (EMBEDDING_DIM, EMBEDDING_FRONTEND, EMBEDDING_STEP_SAMPLES, EmbeddingFrontend,
                        FeatureModels, compute_embeddings, compute_embeddings_batch, feature_models)
from .features import Frontend, compute_features, compute_features_batch, validate_settings
from .native import native_available
from .quantize import (FloatQuantizer, WindowQuantizer, dynamic_scale_range, to_model_input,
                       to_model_input_mfcc)

__all__ = [
    "Frontend",
    "compute_features",
    "compute_features_batch",
    "to_model_input",
    "to_model_input_mfcc",
    "FloatQuantizer",
    "WindowQuantizer",
    "dynamic_scale_range",
    "validate_settings",
    "native_available",
    "EMBEDDING_FRONTEND",
    "EMBEDDING_DIM",
    "EMBEDDING_STEP_SAMPLES",
    "FeatureModels",
    "feature_models",
    "EmbeddingFrontend",
    "compute_embeddings",
    "compute_embeddings_batch",
]
