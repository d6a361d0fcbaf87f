"""Audio the other packages share: reading speech files (`io`) and resampling (`resample`).

The bottom layer under render/, roi/ and listen/: it imports nothing of avatarkit but errors.
"""
