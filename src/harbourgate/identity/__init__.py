"""Who is asking: API keys → application → participant, and verified end users."""
