"""SAM 3's concept prompts (issue 34): phrases and example boxes that find every instance."""
