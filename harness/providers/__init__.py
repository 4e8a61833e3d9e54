"""One module per wire protocol; all speak the small interface in `base`."""
