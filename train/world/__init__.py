"""The tiny world: a seeded generator of images, videos, sounds and 3D point clouds with captions and properties.

See DESIGN section 5. Entry points: `python -m train.world` (the CLI), `dataset.generate_world`,
`dataset.load_split`, and `records.SampleRecord` (the record every data source produces).
"""
