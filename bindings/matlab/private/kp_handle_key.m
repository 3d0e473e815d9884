function [key, deriv] = kp_handle_key(f)
% The gateway key and derivation path held by a handle of KP_GENRED/KP_GRAD.
ok = isa(f, 'function_handle');
if ok
  s = functions(f);
  ok = isfield(s, 'workspace') && ~isempty(s.workspace);
end
if ok
  ws = s.workspace{1};
  ok = isstruct(ws) && isfield(ws, 'key') && isfield(ws, 'deriv');
end
if ~ok
  error('libkp:argument', 'libkp: expected a handle made by kp_genred or kp_grad');
end
key = ws.key;
deriv = ws.deriv;
end
