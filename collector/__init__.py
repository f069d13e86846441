"""The edge runtime: reads controllers (OPC UA) and meters (Modbus) into the journal."""
