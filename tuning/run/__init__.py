"""Everything that talks to Ray: the sweep driver, the trainable, shared artefacts, storage, retries, progress, tracking, dry run, reports of Tune folders."""
