"""Training-side code: the tiny-world data generator, instruction data, DisCRn, real-data adapters and trainers.

`train/` imports `core/`, never the other way round (DESIGN section 2).
"""
