"""Pure feature code: profiles, event-time windows, per-asset state, one extractor.

The DataFrame path (:mod:`assetwatch.features.offline`, :mod:`assetwatch.features.readings`)
needs pandas (the ``train`` extra) and is imported from its own module, not from here.
"""

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile, load_profile, load_profiles
from assetwatch.features.state import AssetState

__all__ = ["AssetState", "FeatureExtractor", "Profile", "load_profile", "load_profiles"]
