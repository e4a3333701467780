--! needs: base holds
-- expire: now -> {'ok', count}

return {'ok', expire_due(tonumber(ARGV[3]))}
