"""The simulated workshop: one physical model served over real OPC UA and Modbus TCP."""
