"""Model components: vision encoders, projectors, the LLM wrapper and their composition."""
