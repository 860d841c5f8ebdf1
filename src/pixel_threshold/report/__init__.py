"""Pictures for the MLflow UI, one module per kind.

``examples``: clean vs adversarial images with the changed pixels marked;
``curves``: query efficiency and success rate against ``th``; ``confusion``:
confusion matrices; ``table``: the comparison table as HTML.
"""
