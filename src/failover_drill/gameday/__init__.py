"""Game days: drills in sequence for a room of people, their answers, and the after-action report."""
