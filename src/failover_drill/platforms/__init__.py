"""Where the fleet lives: sandbox (local processes), kwok (real control planes, no Docker), kind (Docker)."""
