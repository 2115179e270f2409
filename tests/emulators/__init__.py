"""Local servers that speak each backend's exact wire format, for faults and timing real peers cannot show."""
