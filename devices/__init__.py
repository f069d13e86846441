"""What is on the workshop floor: site inventory, device knowledge as data, simulators.

The lowest layer: it imports no other wattelier package.
"""
