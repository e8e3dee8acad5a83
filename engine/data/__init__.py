"""The data pipeline: dataset_info registry, format converters, chat templates, tokenisation with
masking / truncation / packing, and the preprocessing cache.

registry   load_dataset_info, dataset_stage, list_datasets           (no heavy imports: used by the UI)
records    load_records -> Records: THE path from dataset names to the records a run trains on; duplicates
templates  TEMPLATES, get_template, resolve_template (THE way to a run's template), Template.encode_*/render
processing tokenisation per stage; mark_trained for the previews
loader     load_examples, get_dataset -> DatasetModule
collator   make_collator
"""
