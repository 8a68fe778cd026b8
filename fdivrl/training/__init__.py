"""Host training loops (offline, online, finetune) and policy evaluation."""
