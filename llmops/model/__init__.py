"""The model half: base-model loading, LoRA fine-tuning, evaluation metrics, gate, registry."""
