"""Pure image and video operations (Pillow, ffmpeg): nothing of reelflow but schemas, no Prefect."""
