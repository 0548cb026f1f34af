"""Our PPO for language models: small pure functions (losses, kl) and, later, the loop."""
