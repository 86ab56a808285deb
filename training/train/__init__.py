"""Training: the run engine (checkpoints, resume, DDP), YAML configs, the lip-sync expert and generator
recipes and their losses (`lightlip-train`)."""
