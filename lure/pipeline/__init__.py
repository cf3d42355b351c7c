"""The pipeline: which stages exist for a spec (``stages``) and the ``dvc.yaml`` they become (``generate``)."""
