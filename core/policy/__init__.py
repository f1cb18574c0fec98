"""The policy IT writes: its model, how files are read and checked, and what a feature is."""
