"""ExpoSynth (LURE §2.2): exposure-controlled synthetic interactions under collaborative constraints, and what they
do to the recommenders trained on them (the augment loop)."""
