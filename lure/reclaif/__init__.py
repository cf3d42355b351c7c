"""RecLAIF (He et al., KDD'25 OARS): task instances (sequential from the windows, ESCI retrieval), prompts, the
answer parser and ValidRatio, the simulated teacher and judge of the world, the recommender's distillation, sampling
and DPO, and the metrics of its answers."""
