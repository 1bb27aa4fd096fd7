"""A research project of its own that trains with nnopt: a model and a LightningDataModule, no nnopt imports."""
