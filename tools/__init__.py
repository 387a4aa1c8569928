"""Developer tools: code generation, golden fixtures, contract baselines."""
