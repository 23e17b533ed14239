"""Pure feature code: profiles, event-time windows, per-asset state, one extractor."""

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.offline import compute_baseline, compute_features
from assetwatch.features.profiles import Profile, load_profile, load_profiles
from assetwatch.features.state import AssetState

__all__ = [
    "AssetState", "FeatureExtractor", "Profile", "compute_baseline", "compute_features",
    "load_profile", "load_profiles",
]
