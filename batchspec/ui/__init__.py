"""What the user sees: plans, progress, outcomes, status and prompts as terminal text or JSON."""
