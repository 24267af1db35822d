"""Image → music: pictures of tracks (:mod:`imagemusic.pictures`), the image input pipeline and image
encoders that map a picture into an index's music space (``docs/images.md``).

Nothing heavy is imported here: ``import imagemusic.pictures`` needs only Pillow and mutagen.
"""
