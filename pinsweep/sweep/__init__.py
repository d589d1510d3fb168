"""The Hydra glue of a sweep: callbacks, job order, launchers' needs, interruption, the folder lock, resume."""
