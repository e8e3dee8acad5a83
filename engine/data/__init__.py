"""The data pipeline: dataset_info registry, format converters, chat templates, tokenisation with
masking / truncation / packing, and the preprocessing cache.

registry   load_dataset_info, dataset_stage, list_datasets           (no heavy imports: used by the UI)
templates  TEMPLATES, get_template, Template.encode_multiturn/encode_prompt/render
loader     load_examples, get_dataset -> DatasetModule
collator   make_collator
"""
