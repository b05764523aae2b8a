"""Datasets and LightningDataModules. Import the submodule you need (e.g. race.data.listops);
this package imports nothing heavy so that `import race.data` stays cheap."""
