"""The training engine. Imports torch and numpy only, so it runs on a bare GPU machine."""
