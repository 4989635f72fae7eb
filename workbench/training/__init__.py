"""The reward model, its data collation, loss and trainer. Never imports Qt."""
