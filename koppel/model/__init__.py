"""The canonical model: the platform's own view of the records it moves.

Get-side mappings turn an application's records into these models and send-side mappings turn them
into the other application's records, so N connectors need N mappings, not N x N translations.
Keys (`key`, `*_key`) are the source application's identifiers, kept as strings.
"""

from koppel.model.records import (
    Address,
    Category,
    Customer,
    Order,
    OrderKind,
    OrderLine,
    Product,
    ProductKind,
    StockLevel,
    Variant,
)

__all__ = [
    "Address",
    "Category",
    "Customer",
    "Order",
    "OrderKind",
    "OrderLine",
    "Product",
    "ProductKind",
    "StockLevel",
    "Variant",
]
