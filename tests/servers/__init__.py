"""Local HTTP servers that stand in for cloud services in tests."""
