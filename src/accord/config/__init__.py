"""Project files: accord.yaml and mappings/<system>.yaml, typed, validated and versioned."""

from accord.config.loader import Mapping, Project, load_project

__all__ = ["Mapping", "Project", "load_project"]
