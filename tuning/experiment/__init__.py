"""What a sweep is: the experiment schema, presets, table layouts and the trial specification."""
