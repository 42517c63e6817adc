"""Writers: multiscale OME-Zarr."""
