"""genai imagegen: the worker that turns `image.job.requested` events into PNGs with diffusers (SDXL).

See README.md beside this package's service folder for what it does and how to run it.
"""
