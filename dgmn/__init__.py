"""DGMN: dynamic graph message passing networks."""
