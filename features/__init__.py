"""Pure feature code: profiles, event-time windows, per-asset state, one extractor."""

from features.extractor import FeatureExtractor
from features.offline import compute_features
from features.profiles import Profile, load_profile, load_profiles
from features.state import AssetState

__all__ = [
    "AssetState", "FeatureExtractor", "Profile", "compute_features", "load_profile",
    "load_profiles",
]
