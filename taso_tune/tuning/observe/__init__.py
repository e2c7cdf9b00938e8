"""What a running sweep shows: the progress table, TensorBoard summaries and live Prometheus metrics."""
