"""trainer: turns confident results and user feedback into training examples."""
