"""The built-in demos (``genforget demo <name>``, ``make demo-*``): each memorises, forgets and
verifies on data that ships with the package, offline on a CPU. Library code never imports this
package."""
